"""vastguard: team governance for Vast.ai GPU rentals on Pulumi (the `vastguard` command and the demo)."""
