//! Simulation and fault tests of the replicated store (see issue 5).
