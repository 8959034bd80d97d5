"""Beyond one host and one Redis: failover, a cut host, RabbitMQ, Redis under pressure."""
