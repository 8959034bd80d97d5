"""Operating it (docs/operate/): image, compose, RabbitMQ, Cluster, Sentinel, TLS, hosts."""
