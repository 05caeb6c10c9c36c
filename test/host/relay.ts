// Shared plumbing of the test proxies in front of an engine socket.
import type http from 'node:http';

/**
 * Streams the engine's answer to the client: headers at once (an event stream sends
 * them long before its first event), and the client's connection dropped when the
 * engine goes away mid-answer (a restart), as a dead socket would.
 */
export function relayAnswer(answer: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(answer.statusCode ?? 502, answer.headers);
  res.flushHeaders();
  answer.pipe(res);
  answer.on('aborted', () => res.destroy());
  answer.on('error', () => res.destroy());
}

/** Starts `server` on the unix socket at `path`. */
export function listenOn(server: http.Server, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
}
