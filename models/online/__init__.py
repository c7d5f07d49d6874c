"""The online learner's pure core: models that learn one micro-batch at a time, their
progressive metrics, and the versions (deltas, fusion, guard) a learner publishes."""
