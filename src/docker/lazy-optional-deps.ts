// dockerode requires its SSH client (ssh2) and its BuildKit-session stack
// (@grpc/grpc-js, @grpc/proto-loader, protobufjs) when it is loaded, though
// dockfw needs ssh2 only for an ssh:// DOCKER_HOST and never opens a session.
// Loading them costs about 11 MB of resident memory for the life of the
// daemon. This module, imported before dockerode, hands dockerode and
// docker-modem stand-ins that load the real module on first use, so an
// ssh:// host still works and a unix socket never pays for it.
import Module, { createRequire } from 'node:module';

/** The modules deferred, and the package whose requires are deferred. */
const DEFERRED = new Set(['ssh2', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs']);
const DEFERRING_PACKAGES = /[\\/]node_modules[\\/](dockerode|docker-modem)[\\/]/;

type Load = (request: string, parent: unknown, isMain: boolean) => unknown;
type Loader = { _load: Load };

/** A stand-in for a module: every property read loads the real module. */
function deferredModule(load: () => Record<PropertyKey, unknown>): object {
  const classes = new Map<PropertyKey, unknown>();
  return new Proxy(
    {},
    {
      get(_target, key) {
        // docker-modem reads `require('ssh2').Client` when it is loaded and
        // calls `new Client()` later: hand it a constructor that loads then.
        if (key === 'Client') {
          let cls = classes.get(key);
          if (cls === undefined) {
            cls = new Proxy(function DeferredClient() {}, {
              construct: (_t, args) =>
                Reflect.construct(load()[key] as new (...a: unknown[]) => object, args),
              get: (_t, prop) => (load()[key] as Record<PropertyKey, unknown>)[prop],
            });
            classes.set(key, cls);
          }
          return cls;
        }
        return load()[key];
      },
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

/** For tests: whether a module (as dockerode would resolve it) is loaded. */
export function isLoaded(request: string): boolean {
  const require = createRequire(createRequire(import.meta.url).resolve('dockerode'));
  try {
    return require.cache[require.resolve(request)] !== undefined;
  } catch {
    return false;
  }
}
