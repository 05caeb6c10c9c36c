// Desired states for the kernel tests of both backends: from the inspect fixtures,
// and random but valid engines that cover combinations the fixtures do not.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { loadConfig } from '../../src/config/config.js';
import { parseInspectArray } from '../../src/docker/inspect.js';
import type { ContainerSnapshot, EngineSnapshot, Protocol } from '../../src/docker/snapshot.js';
import { desiredState, type DesiredState } from '../../src/policy/desired.js';

/** The tests' usual container: `web` on 172.17.0.2, its port 80 published on host port 8080, `dockfw.allow` as given. */
export function webContainer(allow: string, overrides: Partial<ContainerSnapshot> = {}): ContainerSnapshot {
  return {
    id: 'a'.repeat(64),
    name: 'web',
    running: true,
    labels: { 'dockfw.allow': allow },
    networks: [{ network: 'bridge', ipv4: '172.17.0.2' }],
    ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 }],
    ...overrides,
  };
}

/** A second container like `web` (its labels, its port 80), on 172.17.0.3 and host port 8081. */
export function secondWeb(web: ContainerSnapshot): ContainerSnapshot {
  return {
    ...web,
    id: 'b'.repeat(64),
    name: 'new',
    networks: [{ network: 'bridge', ipv4: '172.17.0.3' }],
    ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8081 }],
  };
}

/** The desired state of test/fixtures/NAME (a `docker inspect` array) under `env`. */
export function fixtureState(name: string, env: Record<string, string>, bridges: string[]): DesiredState {
  const json: unknown = JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8'));
  return desiredState({ containers: parseInspectArray(json), bridges }, loadConfig(env));
}

export interface RandomStatesOptions {
  readonly seed: number;
  /** Container IPv4 addresses; a few constants make two containers share one. */
  readonly ipv4: fc.Arbitrary<string>;
  readonly maxContainers: number;
  readonly bridge: RegExp;
  readonly maxBridges: number;
  readonly externalInterfaces: readonly string[];
}

export function randomStates(count: number, options: RandomStatesOptions): DesiredState[] {
  const sources = fc.constantFrom(
    'any',
    'none',
    '203.0.113.0/24',
    '198.51.100.7, 198.51.100.9-198.51.100.30',
    '2001:db8::/48, 203.0.113.128/25',
    '2001:db8:1::5-2001:db8:1::9',
    '0.0.0.0/0',
    '::/0',
  );
  const engine: fc.Arbitrary<EngineSnapshot> = fc.record({
    containers: fc.array(
      fc.record({
        id: fc.stringMatching(/^[0-9a-f]{64}$/),
        name: fc.stringMatching(/^[a-z]{2,8}$/),
        running: fc.constant(true),
        labels: fc.dictionary(
          fc.constantFrom(
            'dockfw.allow',
            'dockfw.allow.80',
            'dockfw.allow.53/udp',
            'dockfw.allow.9000-9100/sctp',
          ),
          sources,
          { maxKeys: 3 },
        ),
        networks: fc.array(
          fc.record({
            network: fc.constantFrom('a', 'b'),
            ipv4: options.ipv4,
            ipv6: fc.constantFrom('fd00::2', 'fd00:1::abcd', '2001:db8:50::5'),
          }),
          { minLength: 1, maxLength: 2 },
        ),
        ports: fc.array(
          fc.record({
            containerPort: fc.constantFrom(53, 80, 81, 82, 9000, 9050, 65535),
            protocol: fc.constantFrom<Protocol>('tcp', 'udp', 'sctp'),
            hostIp: fc.constant(''),
            hostPort: fc.constant(1),
          }),
          { minLength: 1, maxLength: 4 },
        ),
      }),
      { maxLength: options.maxContainers },
    ),
    bridges: fc.array(fc.stringMatching(options.bridge), { maxLength: options.maxBridges }),
  });
  const env = fc.record({
    DOCKFW_DEFAULT_POLICY: fc.constantFrom('allow', 'deny'),
    DOCKFW_EXTERNAL_INTERFACES: fc.constantFrom(...options.externalInterfaces),
  });
  return fc
    .sample(fc.tuple(engine, env), { numRuns: count, seed: options.seed })
    .map(([e, c]) => desiredState(e, loadConfig(c)));
}
