"""Learning: learners, their limits and redelivery, plans and their versions."""
