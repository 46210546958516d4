//! Files as a sink (the JSON file source lives in `ops::json_file`).

pub mod sink;
