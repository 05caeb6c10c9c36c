// The live engine as a snapshot, for commands that read it once (plan).
import type { Config } from '../config/config.js';
import { readEngineSnapshot } from '../docker/container-cache.js';
import { createDockerClient } from '../docker/dockerode-client.js';
import type { EngineSnapshot } from '../docker/snapshot.js';

export async function readLiveSnapshot(config: Config): Promise<EngineSnapshot> {
  return readEngineSnapshot(createDockerClient(config.dockerHost));
}
