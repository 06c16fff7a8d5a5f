"""What an HLT worker does to one event, without I/O."""
