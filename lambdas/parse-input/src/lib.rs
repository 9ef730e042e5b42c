//! The parse-input Lambda handler.
