// SIGTERM/SIGINT for long-running commands. Installed first thing, kept for the
// whole run: the first signal asks for a prompt, orderly stop; a second one
// exits at once. Either way dockfw's rules stay in place.

export interface StopSignals {
  /** Resolves with the first SIGTERM/SIGINT. */
  readonly received: Promise<NodeJS.Signals>;
}

export function installStopSignals(exit: (code: number) => void = (code) => process.exit(code)): StopSignals {
  let first: NodeJS.Signals | undefined;
  let resolveReceived: (signal: NodeJS.Signals) => void = () => {};
  const received = new Promise<NodeJS.Signals>((resolve) => (resolveReceived = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (first === undefined) {
      first = signal;
      resolveReceived(signal);
    } else {
      exit(0);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return { received };
}
