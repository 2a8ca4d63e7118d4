// user_m1.cu: kernels and set-up of the flyhpc contract neuron as NEST GPU's `user_m1` (see user_m1.h).
//
// Update: for every neuron, flyhpc::lif_step applies what ports 0/1 collected since the last update
// (input of the previous contract step, dropped if the neuron was refractory then), integrates exactly,
// thresholds and resets; a spike is pushed to NEST GPU's spike buffer. The port sums are then cleared.
//
// Step mapping (read from NEST GPU's SimulationStep; unverified until a GPU runs it): NEST GPU step m (its
// absolute time index NESTGPUTimeIdx = m + 1) is contract step m - 1, so step 0 is a lead-in. Why:
// - spikes delivered with a delay of d steps reach the ports after the update of step m + d and feed
//   step m + d + 1, the contract's delivery at s + D for recurrent synapses of D steps;
// - a spike_generator event at time k*dt is emitted in NEST GPU step k (contract k - 1) and, with a 1-step
//   delay, feeds contract step k + 1: the contract's kick at step k, including k = 0 (via the lead-in);
// - a spike in step m is recorded at time (m + 1)*dt, i.e. (contract step + 2)*dt (the worker subtracts 2).
// Calibrate computes the propagator in double precision from tau_m, tau_s and the time resolution.
// Written against NEST GPU's BaseNeuron interface; NOT RUN HERE (no GPU).
#include <cmath>

#include "flyhpc_lif.cuh"
#include "spike_buffer.h"
#include "user_m1.h"

using namespace user_m1_ns;

extern __constant__ long long NESTGPUTimeIdx;  // absolute index of the step being computed, plus one

#define V_m var[i_V_m]
#define g var[i_g]
#define in_g var[i_in_g]
#define in_v var[i_in_v]
#define last_spike var[i_last_spike]

#define V_0 param[i_V_0]
#define V_rst param[i_V_rst]
#define V_th param[i_V_th]
#define tau_m param[i_tau_m]
#define tau_s param[i_tau_s]
#define ref_steps param[i_ref_steps]
#define A param[i_A]
#define B param[i_B]
#define Coef param[i_Coef]

// Spike-free "last spike" value: far enough in the past that no neuron starts refractory.
static const float kNeverSpiked = -1.0e7f;

__global__ void user_m1_Calibrate(int n_node, float *param_arr, int n_param, float h) {
  const int i_neuron = threadIdx.x + blockIdx.x * blockDim.x;
  if (i_neuron < n_node) {
    float *param = param_arr + n_param * i_neuron;
    A = (float)exp(-(double)h / (double)tau_m);
    B = (float)exp(-(double)h / (double)tau_s);
    Coef = (float)((double)tau_s / ((double)tau_s - (double)tau_m));
  }
}

__global__ void user_m1_Update(int n_node, int i_node_0, float *var_arr, float *param_arr, int n_var,
                               int n_param) {
  const int i_neuron = threadIdx.x + blockIdx.x * blockDim.x;
  if (i_neuron < n_node) {
    float *var = var_arr + n_var * i_neuron;
    float *param = param_arr + n_param * i_neuron;
    // A, B and Coef are rounded to float by NEST GPU's parameter storage; the state update itself runs
    // in double inside lif_step (NEST GPU state is float32: recorded as dtype float32).
    const flyhpc::LifParams p = {A, B, Coef, V_0, V_rst, V_th};
    long long last = (long long)last_spike;
    float v = V_m, gg = g;
    const long long step = NESTGPUTimeIdx - 2;  // contract step (see the step mapping above)
    const int spiked = flyhpc::lif_step(p, step, (int)ref_steps, in_g, in_v, v, gg, last);
    V_m = v;
    g = gg;
    last_spike = (float)last;
    in_g = 0.0f;
    in_v = 0.0f;
    if (spiked) {
      PushSpike(i_node_0 + i_neuron, 1.0);
    }
  }
}

user_m1::~user_m1() {
  FreeVarArr();
  FreeParamArr();
}

int user_m1::Init(int i_node_0, int n_node, int n_port, int i_group, unsigned long long *seed) {
  // NEST GPU allocates this group's input buffer (get_spike_array_) for the n_port given to Create, after Init;
  // with fewer ports than the kernels use, every step clears and fills past its end. Refuse instead.
  if (n_port != user_m1_n_port) {
    throw ngpu_exception(std::string("user_m1 (flyhpc) has ") + std::to_string(user_m1_n_port) +
                         " receptor ports: create it with Create(\"user_m1\", n, " + std::to_string(user_m1_n_port) +
                         "), not n_port = " + std::to_string(n_port));
  }
  BaseNeuron::Init(i_node_0, n_node, user_m1_n_port /*ports: 0 -> g, 1 -> v*/, i_group, seed);
  node_type_ = i_user_m1_model;
  n_scal_var_ = N_SCAL_VAR;
  n_var_ = n_scal_var_;
  n_scal_param_ = N_SCAL_PARAM;
  n_param_ = n_scal_param_;
  AllocParamArr();
  AllocVarArr();
  scal_var_name_ = user_m1_scal_var_name;
  scal_param_name_ = user_m1_scal_param_name;

  // Defaults are the model contract's (docs/DESIGN.md §1); the worker sets them explicitly anyway.
  SetScalParam(0, n_node, "V_0", -52.0);
  SetScalParam(0, n_node, "V_rst", -52.0);
  SetScalParam(0, n_node, "V_th", -45.0);
  SetScalParam(0, n_node, "tau_m", 20.0);
  SetScalParam(0, n_node, "tau_s", 5.0);
  SetScalParam(0, n_node, "ref_steps", 22.0);
  SetScalParam(0, n_node, "A", 0.0);
  SetScalParam(0, n_node, "B", 0.0);
  SetScalParam(0, n_node, "Coef", 0.0);
  SetScalParam(0, n_node, "den_delay", 0.0);
  SetScalVar(0, n_node, "V_m", -52.0);
  SetScalVar(0, n_node, "g", 0.0);
  SetScalVar(0, n_node, "in_g", 0.0);
  SetScalVar(0, n_node, "in_v", 0.0);
  SetScalVar(0, n_node, "last_spike", kNeverSpiked);

  // Incoming spikes add weight x height to the port's variable: port 0 -> in_g, port 1 -> in_v (the next
  // variable), each neuron n_var_ floats further on. One shared port weight of 1.
  float input_weight = 1.0;
  gpuErrchk(cudaMalloc(&port_weight_arr_, sizeof(float)));
  gpuErrchk(cudaMemcpy(port_weight_arr_, &input_weight, sizeof(float), cudaMemcpyHostToDevice));
  port_weight_arr_step_ = 0;
  port_weight_port_step_ = 0;
  port_input_arr_ = GetVarArr() + GetScalVarIdx("in_g");
  port_input_arr_step_ = n_var_;
  port_input_port_step_ = 1;
  den_delay_arr_ = GetParamArr() + GetScalParamIdx("den_delay");
  return 0;
}

int user_m1::Update(long long /*it: counts from the start of each Simulate call*/, double /*t1*/) {
  user_m1_Update<<<(n_node_ + 1023) / 1024, 1024>>>(n_node_, i_node_0_, var_arr_, param_arr_, n_var_, n_param_);
  return 0;
}

int user_m1::Free() {
  FreeVarArr();
  FreeParamArr();
  return 0;
}

int user_m1::Calibrate(double /*time_min*/, float time_resolution) {
  user_m1_Calibrate<<<(n_node_ + 1023) / 1024, 1024>>>(n_node_, param_arr_, n_param_, time_resolution);
  return 0;
}
