//! The health-check Lambda handler.
