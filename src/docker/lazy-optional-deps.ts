// dockerode requires its SSH client (ssh2) and its BuildKit-session stack
// (@grpc/grpc-js, @grpc/proto-loader, protobufjs) when it is loaded, though
// dockfw needs ssh2 only for an ssh:// DOCKER_HOST and never opens a session.
// Loading them costs about 7 MB of resident memory (measured at 5,000
// containers) for the life of the daemon. This module, imported before
// dockerode, hands dockerode and docker-modem stand-ins that load the real
// module on first use, so an ssh:// host still works and a unix socket never
// pays for it.
import Module from 'node:module';

/** The modules deferred, and the packages whose requires of them are deferred. */
const DEFERRED = new Set(['ssh2', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs']);
const DEFERRING_PACKAGES = /[\\/]node_modules[\\/](dockerode|docker-modem)[\\/]/;

type Load = (request: string, parent: unknown, isMain: boolean) => unknown;
type Loader = { _load: Load };

/** A stand-in for a module: every property read loads the real module. */
function deferredModule(load: () => Record<PropertyKey, unknown>): object {
  let client: object | undefined;
  // docker-modem reads `require('ssh2').Client` when it is loaded and calls
  // `new Client()` later: hand it a constructor that loads then.
  const deferredClient = (): object => {
    const real = (): new (...args: unknown[]) => object =>
      load().Client as new (...args: unknown[]) => object;
    const stand: object = new Proxy(function DeferredClient() {}, {
      // A subclass of the stand-in builds a subclass of the real class.
      construct: (_target, args, newTarget) =>
        Reflect.construct(real(), args, newTarget === stand ? real() : newTarget) as object,
      get: (_target, prop) => (real() as unknown as Record<PropertyKey, unknown>)[prop],
    });
    return stand;
  };
  return new Proxy(
    {},
    {
      get: (_target, key) => (key === 'Client' ? (client ??= deferredClient()) : load()[key]),
      has: (_target, key) => key in load(),
    },
  );
}

function install(): void {
  const loader = Module as unknown as Loader;
  const original = loader._load;
  loader._load = function deferring(request, parent, isMain) {
    const from = (parent as { filename?: string } | null)?.filename ?? '';
    if (!DEFERRED.has(request) || !DEFERRING_PACKAGES.test(from)) {
      return original.call(this, request, parent, isMain);
    }
    let real: Record<PropertyKey, unknown> | undefined;
    return deferredModule(
      () => (real ??= original.call(this, request, parent, isMain) as Record<PropertyKey, unknown>),
    );
  };
}

install();
