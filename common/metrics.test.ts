import t from 'tap';
import { MetricsRegistry, withLabel } from './metrics.ts';

t.test('withLabel adds a label to a sample with or without labels', async (t) => {
  t.equal(withLabel('yinxin_x 3', 'process', 'public-1'), 'yinxin_x{process="public-1"} 3');
  t.equal(withLabel('yinxin_x{a="b c"} 3', 'process', 'p"1'), 'yinxin_x{process="p\\"1",a="b c"} 3');
});

t.test('families included from other processes render under one HELP and TYPE per family', async (t) => {
  const main = new MetricsRegistry();
  main.counter('yinxin_tokens_total', 'Tokens').inc({}, 2);
  const other = new MetricsRegistry();
  other.counter('yinxin_tokens_total', 'Tokens').inc({}, 5);
  other.gauge('yinxin_only_there', 'Only in the other process', () => 7);
  main.include(() => other.families().map((f) => ({ ...f, samples: f.samples.map((s) => withLabel(s, 'process', 'public-1')) })));
  const text = main.render();
  t.equal(text.match(/# TYPE yinxin_tokens_total counter/g)?.length, 1, 'one TYPE line');
  t.match(text, /# TYPE yinxin_tokens_total counter\nyinxin_tokens_total 2\nyinxin_tokens_total\{process="public-1"\} 5\n/);
  t.match(text, /# TYPE yinxin_only_there gauge\nyinxin_only_there\{process="public-1"\} 7\n/);
  t.equal(main.render(), text, 'rendering twice does not accumulate included samples');
});
