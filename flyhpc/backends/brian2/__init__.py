"""The Brian2 family: one network description (`network`) on three devices — C++ standalone (`cpp`,
the ground truth), Brian2CUDA (`cuda`) and Brian2GeNN (`genn`) — and the signal shield for the
processes Brian2 starts (`child_signals`).
"""
