// Engines whose containers often meet on one address or host port (as after an
// engine restart that swapped addresses), for properties of the per-container cut.
import fc from 'fast-check';
import type { ContainerSnapshot, EngineSnapshot, PortBinding } from '../../src/docker/snapshot.js';
import { labels } from '../unit/fuzz-properties.js';

const hexId = fc.stringMatching(/^[0-9a-f]{64}$/);

/** Few addresses and host ports, so containers often meet on one. */
const port: fc.Arbitrary<PortBinding> = fc.record({
  containerPort: fc.constantFrom(80, 81, 443, 53),
  protocol: fc.constantFrom('tcp' as const, 'udp' as const),
  hostIp: fc.constantFrom('', '0.0.0.0', '203.0.113.1', '203.0.113.2', '::'),
  hostPort: fc.constantFrom(8080, 8081, 8443),
});

export const crowdedContainer: fc.Arbitrary<ContainerSnapshot> = fc.record({
  id: hexId,
  name: fc.constantFrom('web', 'db', 'admin', 'zz'),
  running: fc.boolean(),
  created: fc.boolean(),
  labels,
  networks: fc
    .integer({ min: 2, max: 5 })
    .map((n) => [{ network: 'bridge', ipv4: `172.17.0.${n}`, ipv6: `fd00::${n}` }]),
  ports: fc.array(port, { maxLength: 3 }),
  plannedPorts: fc.array(port, { maxLength: 2 }),
});

export const crowdedEngine: fc.Arbitrary<EngineSnapshot> = fc.record({
  containers: fc.uniqueArray(crowdedContainer, { maxLength: 5, selector: (c) => c.id }),
  bridges: fc.constant(['docker0']),
});
