// Docker's event stream, reduced to what dockfw needs: "something that can
// change the firewall happened, look again". The event itself is never trusted
// for state; every sync re-lists the engine.

export interface DockerEvent {
  readonly type: string;
  /** e.g. "start", "die", "connect"; exec/health actions carry a suffix after ':'. */
  readonly action: string;
  /** Container id for container events; network id for network events. */
  readonly actorId: string;
  /** The container concerned (network events name it in an attribute). */
  readonly containerId: string | undefined;
  /** Container name, when the event says. */
  readonly name: string | undefined;
}

export const CONTAINER_ACTIONS = [
  'create',
  'start',
  'restart',
  'die',
  'stop',
  'kill',
  'destroy',
  'rename',
  'update',
] as const;
// create/destroy change the set of bridges (DOCKFW's "inside" interfaces and
// the catch-all); on engines without an IPv6 DOCKER-USER they also insert
// Docker rules above dockfw's jump in FORWARD.
export const NETWORK_ACTIONS = ['connect', 'disconnect', 'create', 'destroy'] as const;

/** Server-side filter for GET /events, so a busy engine sends only these. */
export const EVENT_FILTERS: { type: ('container' | 'network')[]; event: string[] } = {
  type: ['container', 'network'],
  event: [...CONTAINER_ACTIONS, ...NETWORK_ACTIONS],
};

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** One decoded JSON message from /events; undefined when it is not an event. */
export function parseEvent(message: unknown): DockerEvent | undefined {
  const record = asRecord(message);
  if (!record) return undefined;
  const actor = asRecord(record.Actor);
  const attributes = asRecord(actor?.Attributes) ?? {};
  // API 1.52 dropped the legacy status/id/from fields; older engines send both.
  const type = asString(record.Type);
  const action = asString(record.Action) ?? asString(record.status);
  const actorId = asString(actor?.ID) ?? asString(record.id);
  if (!type || !action || !actorId) return undefined;
  const containerId = type === 'container' ? actorId : asString(attributes.container);
  return { type, action, actorId, containerId, name: asString(attributes.name) };
}

/** Whether an event can change what dockfw must write. */
export function isRelevantEvent(event: DockerEvent): boolean {
  const action = event.action.split(':')[0] ?? '';
  if (event.type === 'container') return (CONTAINER_ACTIONS as readonly string[]).includes(action);
  if (event.type === 'network') return (NETWORK_ACTIONS as readonly string[]).includes(action);
  return false;
}

/**
 * Splits a newline-delimited JSON stream into messages. Chunks may cut a
 * message anywhere; a line that is not JSON is reported and skipped.
 */
export class JsonLineDecoder {
  private buffer = '';

  constructor(private readonly onBadLine: (line: string) => void = () => {}) {}

  push(chunk: string): unknown[] {
    this.buffer += chunk;
    const lines = this.buffer.split('\n');
    this.buffer = lines.pop() ?? '';
    const messages: unknown[] = [];
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        messages.push(JSON.parse(line));
      } catch {
        this.onBadLine(line);
      }
    }
    return messages;
  }
}
