//! The check-for-failures Lambda handler.
