"""The online engine: buffers, the fused simulate–train–sample step, asynchronous executors."""
