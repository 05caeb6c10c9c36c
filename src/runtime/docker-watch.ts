// Keeps an event subscription open and turns relevant events into sync
// requests. Subscribes BEFORE asking for a sync (which lists containers), so
// nothing that happens in between is lost. Reconnects with capped backoff and
// logs only when the connection state changes.
import type { Logger } from 'pino';
import type { EventFollower } from '../docker/container-cache.js';
import type { DockerClient, EventSubscription } from '../docker/docker-client.js';
import { isRelevantEvent } from '../docker/events.js';
import type { Clock, TimerHandle } from './clock.js';
import type { RequestOptions, SyncReason } from './runner.js';

export interface SyncRequester {
  request(reason: SyncReason, options?: RequestOptions): void;
}

export interface DockerWatchOptions {
  readonly docker: DockerClient;
  readonly runner: SyncRequester;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** Called after each successful subscription (e.g. to log the engine's version). */
  readonly onConnected?: () => Promise<void> | void;
  /**
   * Told of the stream's state and of each relevant event before its sync is
   * asked for (the container cache, so an event sync re-reads what it names).
   */
  readonly follower?: EventFollower;
  /** Called when a working connection is lost (once per loss, not per retry). */
  readonly onDisconnected?: (error: unknown) => void;
}

type State = 'starting' | 'connected' | 'disconnected';

export class DockerWatch {
  private state: State = 'starting';
  private stopped = false;
  private subscription: EventSubscription | undefined;
  private wake: (() => void) | undefined;
  private timer: TimerHandle | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: DockerWatchOptions) {}

  /** Whether the event stream is up (so a failing sync is news, not a known outage). */
  get connected(): boolean {
    return this.state === 'connected';
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.subscription?.close();
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { docker, runner, logger } = this.options;
    const initial = this.options.retryInitialMs ?? 250;
    const max = this.options.retryMaxMs ?? 5000;
    let attempt = 0;
    while (!this.stopped) {
      try {
        this.subscription = await docker.subscribe();
        if (this.stopped) break;
        attempt = 0;
        this.options.follower?.streamUp();
        const first = this.state === 'starting';
        this.setState('connected');
        await this.options.onConnected?.();
        runner.request(first ? 'startup' : 'reconnect', { resetBackoff: true });
        for await (const event of this.subscription) {
          this.options.follower?.delivered();
          if (!isRelevantEvent(event)) continue;
          logger.debug(
            { type: event.type, action: event.action, container: event.containerId },
            'docker event',
          );
          // A created container is about to start (docker-proxy listens at its start): its
          // fixed host ports are judged from this sync on, so it must not wait for a token.
          this.options.follower?.observe(event);
          const urgent = event.type === 'container' && event.action === 'create';
          runner.request('event', urgent ? { urgent } : {});
        }
        if (!this.stopped) this.setState('disconnected', new Error('event stream ended'));
      } catch (error) {
        if (!this.stopped) this.setState('disconnected', error);
      } finally {
        this.options.follower?.streamDown();
        this.subscription?.close();
        this.subscription = undefined;
      }
      if (this.stopped) break;
      await this.sleep(Math.min(max, initial * 2 ** attempt));
      attempt++;
    }
  }

  private setState(next: State, error?: unknown): void {
    if (next === this.state) return;
    const previous = this.state;
    this.state = next;
    if (next === 'connected') {
      this.options.logger.info({ after: previous }, 'connected to docker');
    } else {
      const reason = error instanceof Error ? error.message : String(error);
      this.options.logger.warn({ error: reason }, 'docker unreachable: keeping rules, retrying');
      this.options.onDisconnected?.(error);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = this.options.clock.setTimeout(resolve, ms);
    });
  }
}
