/**
 * Figures as they are measured: printed at once (with their target beside
 * them) and kept for bench/RESULTS.md.
 */
export interface Figure {
  readonly name: string;
  readonly value: string;
  /** The target, or '' when the figure is for information. */
  readonly target: string;
  /** Whether the target was met; undefined when there is none. */
  readonly met?: boolean;
  /** Why the target is missed and what would meet it; shown only when missed. */
  readonly ifMissed?: string;
}

export class Report {
  readonly sections: { title: string; figures: Figure[]; notes: string[] }[] = [];

  section(title: string): void {
    this.sections.push({ title, figures: [], notes: [] });
    process.stdout.write(`\n## ${title}\n`);
  }

  private get current() {
    const last = this.sections.at(-1);
    if (last === undefined) throw new Error('no section yet');
    return last;
  }

  figure(figure: Figure): void {
    this.current.figures.push(figure);
    const target =
      figure.target === ''
        ? ''
        : `   [target: ${figure.target}${figure.met === undefined ? '' : figure.met ? ', met' : ', MISSED'}]`;
    process.stdout.write(`  ${figure.name}: ${figure.value}${target}\n`);
  }

  note(text: string): void {
    this.current.notes.push(text);
    process.stdout.write(`  (${text})\n`);
  }

  markdown(): string {
    const out: string[] = [];
    for (const s of this.sections) {
      out.push(`## ${s.title}`, '');
      if (s.figures.length > 0) {
        out.push('| figure | value | target |', '| --- | --- | --- |');
        for (const f of s.figures) {
          const target =
            f.target === '' ? '' : `${f.target}${f.met === undefined ? '' : f.met ? ' ✔' : ' ✘ missed'}`;
          out.push(`| ${f.name} | ${f.value} | ${target} |`);
        }
        out.push('');
      }
      for (const n of s.notes) out.push(`- ${n}`);
      if (s.notes.length > 0) out.push('');
    }
    const missed = this.sections.flatMap((s) =>
      s.figures.filter((f) => f.met === false).map((f) => ({ ...f, name: `${s.title}: ${f.name}` })),
    );
    if (missed.length > 0) {
      out.push('## Missed targets: why, and what would meet them', '');
      // One explanation per kind of miss, listing the figures it covers.
      const reasons = new Map<string, string[]>();
      for (const f of missed) {
        const why = f.ifMissed ?? 'not analysed';
        reasons.set(why, [...(reasons.get(why) ?? []), `${f.name}: ${f.value}`]);
      }
      for (const [why, figures] of reasons) {
        out.push(...figures.map((f) => `- ${f}`), '', why, '');
      }
    }
    return out.join('\n');
  }
}
