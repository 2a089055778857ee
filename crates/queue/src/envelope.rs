//! The envelope file format (being written).
