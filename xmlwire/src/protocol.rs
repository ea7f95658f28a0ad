//! sigma's messages (filled in by the xmlwire issue).
