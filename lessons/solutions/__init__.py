"""The worked solutions of the lessons' exercises, one module per lesson (lessonNN.py).

A notebook loads them only when its SOLUTIONS parameter is True (NPIXELCNN_SOLUTIONS=1);
the tests do so to show that every check passes on a right answer. Try each exercise
yourself before you look.
"""
