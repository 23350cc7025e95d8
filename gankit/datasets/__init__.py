"""Preparing training data: image folders, the movie-poster set, its toy twin and its downloader."""
