"""What every stage may import: config loading and input errors, atomic file writes, checkpoints with
their builder registry, the resume guard and the paths of the files drivestack ships. Imports nothing
from the stages."""
