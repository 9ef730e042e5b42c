//! The start-workers Lambda handler.
