"""Where a recipe's steps run besides this process: `ray` (synthloom[ray])."""
