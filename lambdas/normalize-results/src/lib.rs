//! The normalize-results Lambda handler.
