//! wire: placeholder until domain lands
