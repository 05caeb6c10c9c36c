/** One `docker run -p` style publication: `[HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]`. */
export interface PortSpec {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  proto: 'tcp' | 'udp';
}

function port(text: string, spec: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 65535) throw new Error(`bad port in "${spec}"`);
  return value;
}

/** Parses '8080:80', '198.51.100.1:8081:80/udp', '[2001:db8:1::1]:8080:80'. */
export function parsePortSpec(spec: string): PortSpec {
  const [mapping = '', proto = 'tcp', ...extra] = spec.split('/');
  if (extra.length > 0 || (proto !== 'tcp' && proto !== 'udp')) throw new Error(`bad protocol in "${spec}"`);
  const containerSep = mapping.lastIndexOf(':');
  const hostSep = mapping.lastIndexOf(':', containerSep - 1);
  if (containerSep < 0) throw new Error(`"${spec}" needs a host port (HOSTPORT:CONTAINERPORT)`);
  const containerPort = port(mapping.slice(containerSep + 1), spec);
  const hostPort = port(mapping.slice(hostSep + 1, containerSep), spec);
  const hostIp = hostSep < 0 ? '' : mapping.slice(0, hostSep).replace(/^\[(.*)\]$/, '$1');
  return { hostIp, hostPort, containerPort, proto };
}
