// GPU benchmarks entry point (npm run bench:gpu): GEMM, then fused attention, each against PyTorch on
// the same card in the same run.
import { runGpuGemmBench } from './gpu-gemm.js';

await runGpuGemmBench();
try {
  const m = await import('./gpu-attention.js' as string) as { runGpuAttentionBench?: () => Promise<void> };
  if (m.runGpuAttentionBench) await m.runGpuAttentionBench();
} catch (e) {
  console.log(`attention (gpu): not run: ${(e as Error).message}`);
}
