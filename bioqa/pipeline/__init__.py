"""Phase A retrieval, answering (phase A+/B), output parsing and run bookkeeping."""
