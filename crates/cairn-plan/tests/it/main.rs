//! Integration tests of loading and validation, one binary: a module per
//! area.

mod invalid_examples;
