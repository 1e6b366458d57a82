/** The TSA's figures for /metrics and /healthz, registered on the appliance's registry. */
import type { MetricsRegistry } from '../common/metrics.ts';
import type { TimeStampAuthority } from './authority.ts';
import { FailInfo, type FailInfoName } from './failure.ts';

export function tsaMetrics(registry: MetricsRegistry, authority: TimeStampAuthority): void {
  registry.counterFrom('yinxin_tsa_tokens_issued_total', 'Time-stamp tokens issued', () => authority.stats().issued);
  registry.counterFrom('yinxin_tsa_rejections_total', 'Time-stamp requests rejected, by RFC 3161 failInfo', () => {
    const rejected = authority.stats().rejected;
    return (Object.keys(FailInfo) as FailInfoName[]).map((f) => ({ labels: { failInfo: f }, value: rejected[f] ?? 0 }));
  });
  registry.counterFrom('yinxin_tsa_ledger_commits_total', 'Store transactions that recorded issued tokens', () => authority.stats().ledger.commits);
  registry.gauge('yinxin_tsa_clock_trusted', '1 when the TSA trusts the system clock and stamps, 0 when it refuses (timeNotAvailable)', () => (authority.timeGuard.state().trusted ? 1 : 0));
  registry.gauge('yinxin_tsa_clock_synchronised', '1 synchronised, 0 not, -1 no synchronisation check configured', () => {
    const s = authority.timeGuard.state().synchronised;
    return s === 'unknown' ? -1 : s ? 1 : 0;
  });
  registry.gauge('yinxin_tsa_clock_offset_seconds', 'Offset of the system clock from its time source, as last reported', () => (authority.timeGuard.state().offsetMs ?? 0) / 1000);
  registry.counterFrom('yinxin_tsa_clock_backward_jumps_total', 'Backward jumps of the system clock detected', () => authority.timeGuard.state().backwardJumps);
}
