"""The conversation engine: the adapter contract, the conversation state, and the turn loop."""
