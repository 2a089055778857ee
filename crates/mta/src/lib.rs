//! The outbound agent (being written).
