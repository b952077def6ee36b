"""Video QA data: records, decoding and sampling, synthetic clips, shards."""
