"""The fleet program: a team's stack config in, Vast instances and their estimated cost out."""
