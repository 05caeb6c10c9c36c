// Least privilege, checked from the sources: dockfw runs programs only with
// argument arrays (never a shell, never a command string), and the compose
// files grant only the capabilities it needs. (The Engine API calls it makes
// are recorded on a real engine in test/e2e/hardening-engine.test.ts.)
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

/** Program launchers that take a command string or run a shell. */
const CHILD_PROCESS_ALLOWED = new Set(['spawn', 'execFile']);
const EXECA_ALLOWED = new Set(['execa']);

/** Every way a source file could run something through a shell or from a string; empty if none. */
export function shellUses(source: string): string[] {
  const found: string[] = [];
  if (/\bshell\s*:/.test(source)) found.push('a shell option');
  for (const match of source.matchAll(
    /import\s+(?:(\w+)\s*,?\s*)?(?:\{([^}]*)\}|\*\s+as\s+(\w+))?\s*from\s*['"]((?:node:)?child_process|execa)['"]/g,
  )) {
    const [, defaultName, named = '', namespace, module] = match;
    if (defaultName !== undefined || namespace !== undefined)
      found.push(`a default or namespace import of ${module}`);
    const allowed = module === 'execa' ? EXECA_ALLOWED : CHILD_PROCESS_ALLOWED;
    for (const name of named
      .split(',')
      .map((n) => n.trim().split(/\s+as\s+/)[0] ?? '')
      .filter(Boolean)) {
      if (!allowed.has(name)) found.push(`${name} from ${module}`);
    }
  }
  if (/require\(\s*['"](?:node:)?child_process['"]\s*\)/.test(source)) found.push('require(child_process)');
  // Every call of a launcher passes its arguments as an array literal, right after the program.
  for (const call of source.matchAll(/(?<![.\w])(execa|spawn|execFile)\s*\(([^,()]*),\s*(.)/g)) {
    if (call[3] !== '[') found.push(`${call[1]}(${call[2]}, …) without an argument array`);
  }
  for (const call of source.matchAll(/(?<![.\w])(execa|spawn|execFile)\s*\(\s*[^,()]*\)/g))
    found.push(`${call[0]} with a command string`);
  if (/\bexeca`|\$`|execaCommand|execSync\s*\(|(?<![.\w])exec\s*\(/.test(source))
    found.push('a command string');
  return found;
}

describe('dockfw never runs a shell or a command string', () => {
  const files = sourceFiles(path.join(ROOT, 'src'));

  it('finds the launchers it must judge', () => {
    const launching = files.filter((f) => /\b(execa|spawn)\(/.test(readFileSync(f, 'utf8')));
    expect(launching.length).toBeGreaterThanOrEqual(2);
  });

  it.each(files.map((f) => [path.relative(ROOT, f)]))('%s', (file) => {
    expect(shellUses(readFileSync(path.join(ROOT, file), 'utf8'))).toEqual([]);
  });

  it.each([
    [`import { exec } from 'node:child_process';`],
    [`import { execSync } from 'child_process';`],
    [`import cp from 'node:child_process';`],
    [`import * as cp from 'node:child_process';`],
    [`import { execaCommand } from 'execa';`],
    [`await execa('iptables', args, { shell: true });`],
    [`await execa(\`iptables \${args}\`);`],
    [`spawn('nft monitor');`],
    [`await execa('sh', '-c');`],
    [`await $\`iptables -L\`;`],
    [`const { execSync } = require('child_process');`],
  ])('would catch %s', (snippet) => {
    expect(shellUses(snippet)).not.toEqual([]);
  });
});

describe('the compose files grant only what dockfw needs', () => {
  const composeFiles = readdirSync(ROOT).filter((f) => /^compose.*\.ya?ml$/.test(f));

  it('there are compose files to check', () => {
    expect(composeFiles).toContain('compose.example.yml');
  });

  it.each(composeFiles.map((f) => [f]))('%s', (file) => {
    const compose = parse(readFileSync(path.join(ROOT, file), 'utf8')) as {
      services: Record<string, Record<string, unknown>>;
    };
    const dockfw = compose.services.dockfw;
    expect(dockfw).toBeDefined();
    expect(dockfw?.cap_drop).toEqual(['ALL']);
    expect([...((dockfw?.cap_add as string[]) ?? [])].sort()).toEqual(['NET_ADMIN', 'NET_RAW']);
    expect(dockfw?.privileged).toBeUndefined();
    expect(dockfw?.read_only).toBe(true);
    // `docker stack deploy` ignores security_opt, so the swarm file cannot set it.
    if (!file.includes('swarm')) expect(dockfw?.security_opt).toContain('no-new-privileges:true');
    const volumes =
      (dockfw?.volumes as (string | { source?: string; target?: string; read_only?: boolean })[]) ?? [];
    const sockets = volumes.filter((v) =>
      (typeof v === 'string' ? v : (v.target ?? '')).includes('docker.sock'),
    );
    expect(sockets).toHaveLength(1);
    for (const socket of sockets) {
      if (typeof socket === 'string') expect(socket).toMatch(/:ro$/);
      else expect(socket.read_only).toBe(true);
    }
    // Nothing else of the host is writable: only the socket and tmpfs mounts.
    expect(
      volumes.filter((v) => typeof v !== 'string' && (v as { type?: string }).type === 'bind'),
    ).toHaveLength(sockets.length);
  });
});
