/**
 * The README's first command: a real Docker engine in a network namespace, the
 * example services of compose.example.yml with their dockfw labels, probes from
 * outside addresses before and after dockfw runs, then everything torn down.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { DockfwProcess, dockfwCommand } from '../test/e2e/dockfw-process.js';
import { CLIENT_ADDRESSES, HOST_ADDRESSES, startTestHost, type TestHost } from '../test/host/index.js';
import { REPO_ROOT } from '../test/host/provisioned.js';

interface ExampleService {
  readonly name: string;
  readonly ports: string[];
  readonly labels: Record<string, string>;
}

/** The labeled services of compose.example.yml (everything but dockfw itself). */
function exampleServices(): ExampleService[] {
  const file = path.join(REPO_ROOT, 'compose.example.yml');
  const doc = parse(readFileSync(file, 'utf8')) as {
    services: Record<string, { ports?: string[]; labels?: Record<string, string | number> }>;
  };
  return Object.entries(doc.services)
    .filter(([name, svc]) => name !== 'dockfw' && (svc.ports?.length ?? 0) > 0)
    .map(([name, svc]) => ({
      name: `demo-${name}`,
      ports: svc.ports ?? [],
      labels: Object.fromEntries(Object.entries(svc.labels ?? {}).map(([k, v]) => [k, String(v)])),
    }));
}

const hostPort = (spec: string): number => Number(spec.split(':').at(-2));

async function matrix(host: TestHost, services: ExampleService[]): Promise<string> {
  const sources = CLIENT_ADDRESSES.v4;
  const to = HOST_ADDRESSES.v4[0] ?? '203.0.113.1';
  const lines = [`  ${'port'.padEnd(30)}${sources.map((s) => s.padEnd(15)).join('')}`];
  for (const svc of services) {
    for (const spec of svc.ports) {
      const port = hostPort(spec);
      const outcomes = await host.probeFromAll(sources, { to, port, timeoutMs: 700 });
      const cells = sources.map((s) => (outcomes[s] === 'reached' ? 'reached' : '-').padEnd(15));
      lines.push(`  ${`${svc.name} ${to}:${port}`.padEnd(30)}${cells.join('')}`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const services = exampleServices();
  console.log('starting a Docker 28.5.2 engine in a network namespace ...');
  const host = await startTestHost({ engine: '28.5', iptables: 'nft' });
  let dockfw: DockfwProcess | undefined;
  try {
    for (const svc of services) {
      await host.runContainer({ name: svc.name, ports: svc.ports, labels: svc.labels });
      const labels = Object.entries(svc.labels).map(([k, v]) => `${k}=${v}`);
      console.log(`  ${svc.name}  ports ${svc.ports.join(' ')}  labels ${labels.join('  ')}`);
    }
    console.log('\nwithout dockfw, Docker publishes every port to every outside address:');
    console.log(await matrix(host, services));

    dockfw = DockfwProcess.start(host, { DOCKFW_LOG_LEVEL: 'info', DOCKFW_LISTEN: '' });
    await dockfw.waitForLog('rules applied', 30_000);
    console.log('\nwith `dockfw run` (rules applied from the labels):');
    console.log(await matrix(host, services));

    const plan = await dockfwCommand(host, ['plan', '--family', '4']);
    console.log('\nwhat dockfw wrote (`dockfw plan`, IPv4):');
    console.log(plan.stderr.trim());
    console.log(plan.stdout.trim());
  } finally {
    if (dockfw) await dockfw.stop().catch(() => undefined);
    await host.stop();
    console.log('\ntest host torn down');
  }
}

await main();
