// flyhpc_lif.cuh: one step of the flyhpc model contract for one neuron, shared by NEST GPU's user_m1
// model (user_m1.cu, built into the nestgpu image) and the nvcc check in tests/unit/backends/nestgpu/test_backend.py.
//
// Owns one step of every neuron: apply the input of the previous step (port 0 -> g, port 1 -> v)
// unless the neuron was refractory in that step (Brian2 drops it, DESIGN §1a), then integrate exactly with
// the linear propagator unless refractory (Brian2 rule: refractory while step - last_spike < ref_steps),
// then threshold (v > v_th) and reset (v = v_rst, g = 0). Input that arrives while refractory is
// dropped. CI compiles it with nvcc into a host program and checks it spike for spike against the
// pytorch backend; on the GPU (inside NEST GPU) it is NOT RUN HERE.
#ifndef FLYHPC_LIF_CUH
#define FLYHPC_LIF_CUH

#include <cmath>

namespace flyhpc {

struct LifParams {
  double a;      // exp(-dt / tau_m)
  double b;      // exp(-dt / tau_s)
  double coef;   // tau_s / (tau_s - tau_m)
  double v_0;    // resting potential (mV)
  double v_rst;  // reset potential (mV)
  double v_th;   // threshold (mV)
};

// One neuron, one step. Returns 1 if the neuron spikes at `step`.
__host__ __device__ inline int lif_step(const LifParams &p, long long step, int ref_steps,
                                        float in_g, float in_v, float &v, float &g,
                                        long long &last_spike) {
  // Input of step-1 survives only if the neuron was not refractory then (DESIGN §1a: Brian2 drops
  // input in the spike step s and through s + ref_steps - 1).
  if (step - 1 != last_spike && (step - 1 - last_spike) >= ref_steps) {
    g += in_g;
    v += in_v;
  }
  const bool active = (step - last_spike) >= ref_steps;
  if (active) {
    const double u = (double)v - p.v_0;
    v = (float)(p.v_0 + p.a * u + p.coef * (p.b - p.a) * (double)g);
    g = (float)(p.b * (double)g);
  }
  if (active && v > p.v_th) {
    v = (float)p.v_rst;
    g = 0.0f;
    last_spike = step;
    return 1;
  }
  return 0;
}

}  // namespace flyhpc

#endif  // FLYHPC_LIF_CUH
