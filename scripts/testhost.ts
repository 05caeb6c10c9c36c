/**
 * Keeps a test host up to poke at by hand: `scripts/testhost.sh up [28.5|20.10] [nft|legacy]`
 * prints how to reach it; `scripts/testhost.sh down ID` tears it down.
 */
import path from 'node:path';
import { attachTestHost, startTestHost, type TestHost } from '../test/host/index.js';
import { REPO_ROOT } from '../test/host/provisioned.js';

function usage(): never {
  console.error('usage: testhost.sh up [28.5|20.10] [nft|legacy] | down ID');
  process.exit(2);
}

function describe(host: TestHost): string {
  const ns = `/var/run/netns/${host.engineNs}`;
  const docker = path.relative(
    process.cwd(),
    path.join(
      REPO_ROOT,
      '.cache',
      'engines',
      host.options.engine === '28.5' ? '28.5.2' : '20.10',
      'usr/bin/docker',
    ),
  );
  return [
    `test host ${host.id}: Docker ${host.options.engine}, iptables-${host.options.iptables}`,
    `  engine netns:  ${host.engineNs}   (external interface ext0: 203.0.113.1, 198.51.100.1, 2001:db8:1::1)`,
    `  client netns:  ${host.clientNs}   (203.0.113.10-13, 198.51.100.10-11, 2001:db8:1::10-13)`,
    `  socket:        ${host.socket}`,
    `  logs:          ${host.layout.dockerLog} ${host.layout.containerdLog}`,
    '',
    'try:',
    `  export DOCKER_HOST=${host.dockerHost} DOCKER_CONFIG=${host.layout.dockerConfig}`,
    `  ${docker} run -d --name web -p 8080:80 dfw-busybox:local`,
    `  nsenter --net=${ns} env PATH=${host.layout.binDir}:/usr/sbin:/usr/bin iptables -S DOCKER-USER`,
    `  nsenter --net=${ns} env PATH=${host.layout.binDir}:/usr/sbin:/usr/bin iptables -I DOCKER-USER -i ext0 ! -s 203.0.113.11 -j DROP`,
    `  nsenter --net=/var/run/netns/${host.clientNs} curl --interface 203.0.113.11 http://203.0.113.1:8080/`,
    `  scripts/testhost.sh down ${host.id}`,
  ].join('\n');
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'up') {
    const engine = rest[0] ?? '28.5';
    const iptables = rest[1] ?? 'nft';
    if ((engine !== '28.5' && engine !== '20.10') || (iptables !== 'nft' && iptables !== 'legacy')) usage();
    const host = await startTestHost({ engine, iptables, ipv6: true });
    console.log(describe(host));
  } else if (command === 'down' && rest[0] !== undefined) {
    const host = await attachTestHost(rest[0]);
    await host.stop();
    console.log(`test host ${host.id} stopped`);
  } else {
    usage();
  }
}

await main(process.argv.slice(2));
