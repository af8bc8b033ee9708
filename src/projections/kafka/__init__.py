"""The log to Kafka and back: the relay that publishes every event in log order, and the source
that builds read models from the topic as a consumer group."""
