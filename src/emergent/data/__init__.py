"""Datasets: the verified upstream download, chat records, rendering to (ids, loss_mask), questions, code tasks, statistics."""
