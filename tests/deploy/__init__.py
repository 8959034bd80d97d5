"""Real infrastructure: RabbitMQ, Redis Cluster, Sentinel, TLS, hosts, the image, proxies."""
