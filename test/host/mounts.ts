import { readFile } from 'node:fs/promises';
import { execa } from 'execa';

/** Mount points at or below `dir`, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const points = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    // mountinfo escapes spaces and the like as \040; our paths have none.
    .filter((point) => point === dir || point.startsWith(prefix));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Unmounts everything below `dir` (dockerd leaves netns bind mounts and overlays behind). */
export async function unmountAll(dir: string): Promise<string[]> {
  for (let round = 0; round < 3; round++) {
    const points = await mountsUnder(dir);
    if (points.length === 0) return [];
    for (const point of points) {
      const result = await execa('umount', [point], { reject: false });
      if (result.exitCode !== 0) await execa('umount', ['-l', point], { reject: false });
    }
  }
  return mountsUnder(dir);
}
