"""Running a recipe: the pipeline, its context, the run directory and the stage cache."""
