// user_m1.h: the flyhpc model contract as NEST GPU's user model `user_m1` (NEST GPU's documented way to
// add a neuron model: overwrite src/user_m1.h and src/user_m1.cu, then build). The nestgpu image copies
// this file, user_m1.cu and flyhpc_lif.cuh into the NEST GPU source tree (scripts/build-nestgpu.sh).
//
// State (float, per neuron): V_m and g (mV), in_g and in_v (the sums that arrive on ports 0 and 1 during a
// step: recurrent input for g, drive kicks for v), last_spike (step of the last spike; exact as a float
// up to 2^24 steps = 1677 s at dt = 0.1 ms). Parameters: V_0, V_rst, V_th, tau_m, tau_s (mV, ms),
// ref_steps (refractory steps, per neuron) and the propagator A, B, Coef computed by Calibrate.
// Written against NEST GPU's BaseNeuron interface; compiled and linked into NEST GPU here, NOT RUN (no GPU).
#ifndef USERM1_H
#define USERM1_H

#include <string>

#include "base_neuron.h"
#include "cuda_error.h"
#include "neuron_models.h"
#include "ngpu_exception.h"
#include "node_group.h"

namespace user_m1_ns {

// Receptor ports: 0 adds to g (recurrent synapses), 1 adds to v (drive kicks). NEST GPU sizes a group's input
// buffer from the n_port given to Create (default 1), not from Init: the worker passes this number to Create
// and Init refuses any other (flyhpc/backends/nestgpu/trial.py).
const int user_m1_n_port = 2;

enum ScalVarIndexes { i_V_m = 0, i_g, i_in_g, i_in_v, i_last_spike, N_SCAL_VAR };

enum ScalParamIndexes { i_V_0 = 0, i_V_rst, i_V_th, i_tau_m, i_tau_s, i_ref_steps, i_A, i_B, i_Coef,
                        i_den_delay, N_SCAL_PARAM };

const std::string user_m1_scal_var_name[N_SCAL_VAR] = {"V_m", "g", "in_g", "in_v", "last_spike"};

const std::string user_m1_scal_param_name[N_SCAL_PARAM] = {"V_0", "V_rst", "V_th", "tau_m", "tau_s",
                                                           "ref_steps", "A", "B", "Coef", "den_delay"};

}  // namespace user_m1_ns

class user_m1 : public BaseNeuron {
 public:
  ~user_m1();

  int Init(int i_node_0, int n_neuron, int n_port, int i_group, unsigned long long *seed);

  int Calibrate(double time_min, float time_resolution);

  int Update(long long it, double t1);

  int Free();
};

#endif  // USERM1_H
