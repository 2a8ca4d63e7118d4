// STAND-IN (tests only): the body of user_m1_Update (flyhpc/backends/nestgpu/user_m1.cu) as a host loop, so that the
// NEST GPU stand-in (nestgpu.py, standin_engine.py) runs flyhpc's neuron model itself: the same flyhpc::lif_step
// (flyhpc_lif.cuh), the same float state, the same contract step (NESTGPUTimeIdx - 2), the port sums cleared after
// use. Compiled by g++ with __host__/__device__ defined away (standin_engine.py); one array per variable and
// parameter instead of NEST GPU's interleaved layout. NOT NEST GPU.
#define __host__
#define __device__
#include "flyhpc_lif.cuh"

extern "C" void user_m1_update(int n_node, long long time_idx, float *V_m, float *g, float *in_g, float *in_v,
                               float *last_spike, const float *A, const float *B, const float *Coef, const float *V_0,
                               const float *V_rst, const float *V_th, const float *ref_steps, int *spiked) {
  for (int i = 0; i < n_node; i++) {
    const flyhpc::LifParams p = {A[i], B[i], Coef[i], V_0[i], V_rst[i], V_th[i]};
    long long last = (long long)last_spike[i];
    float v = V_m[i], gg = g[i];
    const long long step = time_idx - 2;  // contract step (user_m1.cu's step mapping)
    spiked[i] = flyhpc::lif_step(p, step, (int)ref_steps[i], in_g[i], in_v[i], v, gg, last);
    V_m[i] = v;
    g[i] = gg;
    last_spike[i] = (float)last;
    in_g[i] = 0.0f;
    in_v[i] = 0.0f;
  }
}
