//! statemachine-gen
