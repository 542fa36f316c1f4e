//! In-memory replica store for simulation and tests.
