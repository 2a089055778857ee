//! aliases placeholder
/// placeholder
pub struct AliasTable;
/// placeholder
pub struct Expansion;
