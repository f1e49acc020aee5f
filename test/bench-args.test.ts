import { describe, expect, it } from 'vitest';
import { BenchArgsError, compileBenchArgs, TRAINING_ROWS } from '../bench/args.ts';

/** `npm run bench`'s command line (bench/args.ts): which blocks run, with what steps. */
describe('compileBenchArgs', () => {
  it('runs every row and block by default, with each row its default steps', () => {
    const o = compileBenchArgs([]);
    expect(o.repeats).toBe(5);
    expect(o.rows.map((r) => r.key)).toEqual([...TRAINING_ROWS]);
    expect(o.rows.find((r) => r.key === 'dcgan_28')).toEqual({ key: 'dcgan_28', steps: 8, warmup: 3 });
    expect(o).toMatchObject({ push: true, sweep: { steps: 200, repeats: 2 }, startup: true });
  });

  it('skips a block by its flag; --skip-srgan drops both SRGAN rows', () => {
    const o = compileBenchArgs(['--skip-srgan', '--skip-28', '--skip-sweep']);
    const keys = o.rows.map((r) => r.key);
    expect(keys).not.toContain('srgan_adversarial');
    expect(keys).not.toContain('srgan_pretrain');
    expect(keys).not.toContain('dcgan_28');
    expect(keys).toContain('progan_64');
    expect(o.sweep).toBeNull();
    expect(o.push).toBe(true);
  });

  it('--only keeps the named blocks alone, and skip flags still apply within them', () => {
    const o = compileBenchArgs(['--only', 'wgan-gp,progan-32,progan-64,push', '--skip-progan-64']);
    expect(o.rows.map((r) => r.key)).toEqual(['wgan_gp', 'progan_32']);
    expect(o).toMatchObject({ push: true, sweep: null, startup: false });
  });

  it("takes each row's steps and warm-up from its own options", () => {
    const o = compileBenchArgs(['--only', '64,transgan', '--steps-64', '3', '--warmup-transgan', '0']);
    expect(o.rows).toEqual([
      { key: 'dcgan_64', steps: 3, warmup: 1 },
      { key: 'transgan', steps: 1, warmup: 0 },
    ]);
  });

  it('refuses bad numbers, unknown options and unknown blocks', () => {
    for (const argv of [
      ['--repeats', '0'],
      ['--steps-64', '1.5'],
      ['--warmup-28', '-1'],
      ['--skip-everything'],
      ['--only', 'dcgan'],
    ])
      expect(() => compileBenchArgs(argv), argv.join(' ')).toThrow(BenchArgsError);
  });
});
