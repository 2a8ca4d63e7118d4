"""The STAND-IN for NEST GPU's Python module (tests/support/nestgpu_standin) refuses what NEST GPU refuses (its messages,
from nest/nest-gpu d3be46f) and records what NEST GPU would record: the format and units of GetRecSpikeTimes, its
buffering, and the step order that makes a trial one Simulate call. Hand-made networks of one or two neurons.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

DT = 0.1
DT32 = float(np.float32(DT))


def _one_neuron(standin, kick_times_ms, max_n=10, ref_steps=0.0):
    """One user_m1 neuron kicked over threshold by a spike_generator at each time (port 1, delay one step)."""
    standin.SetTimeResolution(DT)
    neuron = standin.Create("user_m1", 1, 2)
    standin.SetStatus(neuron, {"ref_steps": ref_steps})
    gen = standin.Create("spike_generator", 1)
    standin.SetStatus(gen, {"spike_times": list(kick_times_ms)})
    standin.Connect(gen, neuron, {"rule": "one_to_one"}, {"weight": 100.0, "delay": DT, "receptor": 1})
    standin.ActivateRecSpikeTimes(neuron, max_n)
    return neuron


def test_spike_times_are_float32_ms_of_the_step_after_the_spike(standin):
    """A kick given at time k*dt is emitted in NEST GPU step k, reaches v for step k + 2, whose spike is recorded at
    that step's time (k + 3) x dt: in ms, a float32 of double(float32(dt)) x (k + 3) (spike_buffer.cu)."""
    neuron = _one_neuron(standin, [5 * DT, 9 * DT])
    standin.Simulate(20 * DT)
    times = standin.GetRecSpikeTimes(neuron)
    assert times == [[float(np.float32(DT32 * 8)), float(np.float32(DT32 * 12))]]
    assert all(isinstance(t, float) for t in times[0])
    assert standin.GetRecSpikeTimes(neuron) == [[]]  # read once: NEST GPU empties its buffers
    standin.Simulate(5 * DT)
    assert standin.GetRecSpikeTimes(neuron) == [[]]


def test_each_simulate_restarts_the_step_count_that_spike_generators_compare_with(standin):
    """Why a trial is one Simulate call: an event at 5 dt fires in the second call's 5th step, not at 5 dt."""
    neuron = _one_neuron(standin, [5 * DT])
    standin.Simulate(3 * DT)
    standin.Simulate(20 * DT)
    assert standin.GetRecSpikeTimes(neuron) == [[float(np.float32(DT32 * (3 + 8)))]]


def test_recording_is_buffered_every_n_steps_and_overflow_is_an_error(standin):
    neuron = _one_neuron(standin, [k * DT for k in range(0, 40, 2)], max_n=4)  # 20 spikes, every other step
    standin.SetRecSpikeTimesStep(neuron, 6)  # at most 3 spikes between bufferings: max_n - 1
    standin.Simulate(45 * DT)
    assert len(standin.GetRecSpikeTimes(neuron)[0]) == 20
    standin.reset()
    neuron = _one_neuron(standin, [k * DT for k in range(0, 40, 2)], max_n=4)
    standin.SetRecSpikeTimesStep(neuron, 8)  # up to 4 between bufferings: NEST GPU would drop the 4th
    with pytest.raises(standin.StandInError, match="Maximum number of recorded spike times exceeded"):
        standin.Simulate(45 * DT)


def test_recording_is_refused_as_nest_gpu_refuses_it(standin):
    standin.SetTimeResolution(DT)
    neurons = standin.Create("user_m1", 4, 2)
    others = standin.Create("user_m1", 2, 2)
    with pytest.raises(ValueError, match="Spike times recording was not activated"):
        standin.GetRecSpikeTimes(neurons)
    with pytest.raises(ValueError, match="all and only  the nodes of the same group"):
        standin.ActivateRecSpikeTimes(neurons[0:2], 10)  # part of a group
    with pytest.raises(ValueError, match="Nodes belong to different node groups"):
        standin.ActivateRecSpikeTimes(standin.NodeSeq(2, 4), 10)  # two groups
    with pytest.raises(ValueError, match="greater than 0"):
        standin.ActivateRecSpikeTimes(neurons, 0)
    standin.ActivateRecSpikeTimes(neurons, 10)
    with pytest.raises(ValueError, match="already activated"):
        standin.ActivateRecSpikeTimes(neurons, 10)
    with pytest.raises(ValueError, match="all and only the nodes of the same group"):
        standin.SetRecSpikeTimesStep(neurons[1:4], 100)
    standin.Simulate(1.0)
    with pytest.raises(ValueError, match="must be activated before calibration"):
        standin.ActivateRecSpikeTimes(others, 10)
    with pytest.raises(ValueError, match="all and only  the nodes of the same group"):
        standin.GetRecSpikeTimes(neurons[0:3])
    assert standin.GetRecSpikeTimes(neurons) == [[], [], [], []]


def test_spike_times_must_name_strictly_increasing_steps(standin):
    """spike_generator.cu SetSpikes (at calibration): round(t / dt) must increase; 0.1 and 0.14 are both step 1."""
    for times in ([0.5, 0.5], [0.5, 0.2], [0.1, 0.14]):
        standin.reset()
        standin.SetTimeResolution(DT)
        gen = standin.Create("spike_generator", 1)
        standin.SetStatus(gen, {"spike_times": times})
        with pytest.raises(ValueError, match="Spike times must be ordered"):
            standin.Simulate(1.0)


def test_a_delay_below_one_step_is_refused_at_connect(standin):
    standin.SetTimeResolution(DT)
    neurons = standin.Create("user_m1", 2, 2)
    with pytest.raises(ValueError, match="Delay must be >= time resolution"):
        standin.Connect([0], [1], {"rule": "one_to_one"}, {"weight": 1.0, "delay": 0.05})
    delays = (ctypes.c_float * 2)(DT, 0.0)
    with pytest.raises(ValueError, match="Delay must be >= time resolution"):
        standin.Connect([0, 1], [1, 0], {"rule": "one_to_one"}, {"weight": 1.0, "delay_array": delays})
    standin.Connect(neurons, neurons, {"rule": "one_to_one"}, {"weight": 1.0, "delay": DT})  # one step: fine
    assert len(standin.STATE["connections"]) == 1
